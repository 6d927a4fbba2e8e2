import ArgumentParser
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `sessiond`: the session service. Every option has an environment twin `SESSIOND_<NAME>`
/// (``EnvironmentTwins``); command-line flags win over the environment.
@main
struct Sessiond: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessiond",
        abstract: "users-session-manager: the session service (HTTP API over libmicrohttpd).",
        discussion: """
            Every option can also be set with an environment variable: SESSIOND_ + the option name in upper \
            snake case (--idle-timeout → SESSIOND_IDLE_TIMEOUT). Flags on the command line win. The API token \
            can come from --api-token-file or from SESSIOND_API_TOKEN (never from a flag: command lines are \
            visible to other users). Without an API token sessiond only listens on loopback addresses.
            """
    )

    @OptionGroup(title: "HTTP")
    var http: HTTPOptions

    @OptionGroup(title: "Sessions")
    var sessions: SessionOptions

    @OptionGroup(title: "Storage")
    var storage: StorageOptions

    @OptionGroup(title: "Redis (--storage redis)")
    var redis: RedisOptions

    @OptionGroup(title: "Security")
    var security: SecurityOptions

    @OptionGroup(title: "Logging")
    var logging: LoggingOptions

    mutating func run() async throws {
        let level = try logging.level()
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "sessiond")
        do {
            let runtime = try SessiondRuntime.build(self, logger: logger)
            let replayed = try runtime.replay()
            try await runtime.run(replayed: replayed)
            try runtime.close()
        } catch let error as StartupError {
            logger.critical("sessiond cannot start", metadata: ["error": "\(error.message)"])
            throw ExitCode(2)
        }
    }

    static func main() async {
        do {
            let arguments = EnvironmentTwins.arguments(
                Array(CommandLine.arguments.dropFirst()),
                environment: { getenv($0).map { String(cString: $0) } },
                options: EnvironmentTwins.options(of: Sessiond.self)
            )
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
