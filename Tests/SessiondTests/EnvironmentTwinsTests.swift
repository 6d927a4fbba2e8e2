import ArgumentParser
import Testing

@testable import sessiond

struct EnvironmentTwinsTests {
    let options = EnvironmentTwins.options(of: Sessiond.self)

    /// Every option the help lists has its twin, and no twin names an option the help does not list:
    /// an option declared with a custom name would break the derivation and fail here.
    @Test func everyOptionInTheHelpHasItsEnvironmentTwin() {
        let help = Sessiond.helpMessage(columns: 10_000)
        // Option lines start with the option: "  --idle-timeout <idle-timeout>   Default idle…".
        let listed = Set(
            help.split(separator: "\n")
                .map { $0.drop { $0 == " " } }
                .filter { $0.hasPrefix("--") && !$0.hasPrefix("--help") }
                .map { String($0.dropFirst(2).prefix { $0 != " " }) }
        )
        #expect(Set(options.map(\.name)) == listed)
        #expect(options.count == listed.count, "an option is declared twice")
        #expect(listed.count >= 20)
    }

    @Test func variableNamesAreUpperSnakeCase() {
        let names = Dictionary(uniqueKeysWithValues: options.map { ($0.name, $0.variable) })
        #expect(names["idle-timeout"] == "SESSIOND_IDLE_TIMEOUT")
        #expect(names["max-sessions-per-user"] == "SESSIOND_MAX_SESSIONS_PER_USER")
        #expect(names["api-token-file"] == "SESSIOND_API_TOKEN_FILE")
        #expect(names["log-level"] == "SESSIOND_LOG_LEVEL")
    }

    @Test func theEnvironmentComesFirstSoThatFlagsWin() {
        let environment = ["SESSIOND_PORT": "9000", "SESSIOND_DATA_DIR": "/tmp/x", "OTHER": "1"]
        let arguments = EnvironmentTwins.arguments(
            ["--port", "9001"],
            environment: { environment[$0] },
            options: options
        )
        #expect(arguments.suffix(2) == ["--port", "9001"])
        #expect(arguments.contains("--data-dir") && arguments.contains("/tmp/x"))
        #expect(arguments.filter { $0 == "--port" }.count == 2)
        #expect(!arguments.contains("1"))
    }

    @Test func flagsAreSetByTruthyValuesOnly() {
        let flag = EnvironmentTwins.Option(name: "allow-plain-http", isFlag: true)
        for (value, expected) in [("1", true), ("true", true), ("YES", true), ("0", false), ("no", false), ("", false)]
        {
            let arguments = EnvironmentTwins.arguments(
                [],
                environment: { $0 == flag.variable ? value : nil },
                options: [flag]
            )
            #expect(arguments == (expected ? ["--allow-plain-http"] : []), "\(value)")
        }
    }

    @Test(arguments: [
        ("idleTimeout", "idle-timeout"), ("maxSessionsPerUser", "max-sessions-per-user"), ("host", "host"),
    ])
    func labelsBecomeArgumentParsersLongNames(label: String, name: String) {
        #expect(EnvironmentTwins.kebabCase(label) == name)
    }
}
