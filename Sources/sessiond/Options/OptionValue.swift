import ArgumentParser

/// Reading option values that need more than ArgumentParser's own checks.
enum OptionValue {
    /// The value of an enumerated option, or a usage error that lists the accepted values.
    static func parse<T: RawRepresentable & CaseIterable>(_ type: T.Type, _ flag: String, _ text: String) throws -> T
    where T.RawValue == String {
        guard let value = T(rawValue: text) else {
            let accepted = T.allCases.map(\.rawValue).joined(separator: ", ")
            throw ValidationError("invalid value for \(flag): \(text) (one of \(accepted))")
        }
        return value
    }

    /// `seconds` as whole milliseconds (rounded up, so that a tiny positive value stays positive), after
    /// checking that it is a finite number in `range`; otherwise a startup error naming `flag`.
    ///
    /// Checked before any conversion: `Int64(Double)` traps on inf, nan and out-of-range values, and
    /// ArgumentParser accepts "inf", "nan" and "1e400" as `Double`s.
    static func milliseconds(_ seconds: Double, _ flag: String, within range: ClosedRange<Double>) throws -> Int64 {
        guard seconds.isFinite, range.contains(seconds) else {
            func text(_ value: Double) -> String { value == value.rounded() ? String(Int64(value)) : String(value) }
            throw StartupError(
                "\(flag) must be a number of seconds from \(text(range.lowerBound)) to \(text(range.upperBound)), not \(seconds)"
            )
        }
        return Int64((seconds * 1000).rounded(.up))
    }
}
