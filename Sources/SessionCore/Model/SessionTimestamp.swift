/// A point in time with millisecond precision, as the session service stores and reports it.
///
/// Rendered as RFC 3339 UTC with milliseconds: `2024-01-01T00:00:00.000Z`.
public struct SessionTimestamp: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    public var millisecondsSinceEpoch: Int64

    public init(millisecondsSinceEpoch: Int64) {
        self.millisecondsSinceEpoch = millisecondsSinceEpoch
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        lhs.millisecondsSinceEpoch < rhs.millisecondsSinceEpoch
    }

    /// RFC 3339, UTC, always with three fractional digits.
    public var description: String { rfc3339 }

    /// RFC 3339, UTC, always with three fractional digits, e.g. `2024-01-01T00:00:00.000Z`.
    public var rfc3339: String {
        String(unsafeUninitializedCapacity: Self.rfc3339Length) { buffer in
            writeRFC3339(to: buffer)
            return Self.rfc3339Length
        }
    }

    /// Length of the RFC 3339 form.
    public static let rfc3339Length = 24

    /// Writes the 24 bytes of the RFC 3339 form to `buffer` (at least 24 bytes long), without
    /// creating a `String`.
    public func writeRFC3339(to buffer: UnsafeMutableBufferPointer<UInt8>) {
        precondition(buffer.count >= Self.rfc3339Length, "buffer too small")
        var milliseconds = millisecondsSinceEpoch
        var days = milliseconds / 86_400_000
        milliseconds -= days * 86_400_000
        if milliseconds < 0 {
            milliseconds += 86_400_000
            days -= 1
        }
        let (year, month, day) = Self.civil(fromDays: days)
        let millisecondsOfDay = UInt32(truncatingIfNeeded: milliseconds)
        let secondsOfDay = millisecondsOfDay / 1000
        let fraction = millisecondsOfDay % 1000
        // Years outside 0...9999 are not representable in RFC 3339; the store never makes them
        // (durations are capped), and the digits wrap rather than overflow.
        let wrappedYear = UInt32(truncatingIfNeeded: (year % 10_000 + 10_000) % 10_000)
        let out = buffer.baseAddress!
        Self.twoDigitTable.withUTF8Buffer { table in
            /// Writes `value` (0...99) as two digits at `offset`.
            func pair(_ value: UInt32, at offset: Int) {
                (out + offset).initialize(from: table.baseAddress! + Int(value) * 2, count: 2)
            }
            pair(wrappedYear / 100, at: 0)
            pair(wrappedYear % 100, at: 2)
            out[4] = UInt8(ascii: "-")
            pair(UInt32(truncatingIfNeeded: month), at: 5)
            out[7] = UInt8(ascii: "-")
            pair(UInt32(truncatingIfNeeded: day), at: 8)
            out[10] = UInt8(ascii: "T")
            pair(secondsOfDay / 3600, at: 11)
            out[13] = UInt8(ascii: ":")
            pair(secondsOfDay / 60 % 60, at: 14)
            out[16] = UInt8(ascii: ":")
            pair(secondsOfDay % 60, at: 17)
            out[19] = UInt8(ascii: ".")
            out[20] = UInt8(truncatingIfNeeded: 48 + fraction / 100)
            pair(fraction % 100, at: 21)
            out[23] = UInt8(ascii: "Z")
        }
    }

    /// "00" to "99", two bytes each: a timestamp is written a pair of digits at a time.
    private static let twoDigitTable: StaticString = """
        00010203040506070809101112131415161718192021222324252627282930313233343536373839\
        40414243444546474849505152535455565758596061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899
        """

    /// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to a proleptic Gregorian date.
    static func civil(fromDays days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthPrime = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthPrime + 2) / 5 + 1
        let month = monthPrime < 10 ? monthPrime + 3 : monthPrime - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
