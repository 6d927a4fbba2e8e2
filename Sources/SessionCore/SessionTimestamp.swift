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

    /// Appends the RFC 3339 form (24 ASCII bytes) to `out`, without creating a `String`.
    public func writeRFC3339(into out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Self.rfc3339Length) { buffer in
            writeRFC3339(to: buffer)
            out.append(contentsOf: UnsafeBufferPointer(buffer))
        }
    }

    /// Writes the 24 bytes of the RFC 3339 form to `buffer` (at least 24 bytes long).
    func writeRFC3339(to buffer: UnsafeMutableBufferPointer<UInt8>) {
        precondition(buffer.count >= Self.rfc3339Length, "buffer too small")
        var milliseconds = millisecondsSinceEpoch
        var days = milliseconds / 86_400_000
        milliseconds -= days * 86_400_000
        if milliseconds < 0 {
            milliseconds += 86_400_000
            days -= 1
        }
        let (year, month, day) = Self.civil(fromDays: days)
        let secondsOfDay = milliseconds / 1000
        func put(_ value: Int64, digits: Int, at offset: Int) {
            var rest = value
            for position in stride(from: offset + digits - 1, through: offset, by: -1) {
                buffer[position] = UInt8(truncatingIfNeeded: 48 + rest % 10)
                rest /= 10
            }
        }
        // Years outside 0...9999 are not representable in RFC 3339; the store never makes them
        // (durations are capped), and the digits wrap rather than overflow.
        put(year, digits: 4, at: 0)
        buffer[4] = UInt8(ascii: "-")
        put(month, digits: 2, at: 5)
        buffer[7] = UInt8(ascii: "-")
        put(day, digits: 2, at: 8)
        buffer[10] = UInt8(ascii: "T")
        put(secondsOfDay / 3600, digits: 2, at: 11)
        buffer[13] = UInt8(ascii: ":")
        put(secondsOfDay / 60 % 60, digits: 2, at: 14)
        buffer[16] = UInt8(ascii: ":")
        put(secondsOfDay % 60, digits: 2, at: 17)
        buffer[19] = UInt8(ascii: ".")
        put(milliseconds % 1000, digits: 3, at: 20)
        buffer[23] = UInt8(ascii: "Z")
    }

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
