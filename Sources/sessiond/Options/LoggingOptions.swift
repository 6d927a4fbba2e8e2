import ArgumentParser
import Logging

/// What sessiond logs.
struct LoggingOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    /// The chosen level.
    func level() throws -> Logger.Level {
        try OptionValue.parse(Logger.Level.self, "--log-level", logLevel)
    }
}
