import ArgumentParser

/// The environment twins of sessiond's options: `SESSIOND_` + the option's name in upper snake case
/// (`--idle-timeout` → `SESSIOND_IDLE_TIMEOUT`), read from the option declarations themselves, so that
/// every option has its twin without a second list.
enum EnvironmentTwins {
    /// One option: its long name and whether it is a flag (no value).
    struct Option: Hashable {
        var name: String
        var isFlag: Bool

        /// The environment variable of the option.
        var variable: String { "SESSIOND_" + name.uppercased().replacing("-", with: "_") }
    }

    /// Every option of `Command`'s option groups and of the command itself, in declaration order.
    ///
    /// Reads the property wrappers' labels (`_idleTimeout`), which ArgumentParser turns into long names
    /// the same way (`--idle-timeout`); options must therefore keep their default names.
    static func options<Command: ParsableArguments>(of command: Command.Type) -> [Option] {
        Mirror(reflecting: Command()).children.flatMap { child -> [Option] in
            if let group = child.value as? any DeclaredOptionGroup { return group.declaredOptions() }
            guard let label = child.label, label.hasPrefix("_") else { return [] }
            let kind = String(describing: type(of: child.value))
            guard kind.hasPrefix("Option<") || kind.hasPrefix("Flag<") else { return [] }
            return [Option(name: kebabCase(String(label.dropFirst())), isFlag: kind.hasPrefix("Flag<"))]
        }
    }

    /// `arguments` after the options set in the environment (`environment` looks a variable up): `--name value` (or `--name` for a flag whose
    /// variable is `1`, `true` or `yes`) for every variable of an option. The arguments come last, so
    /// command-line flags win over the environment.
    static func arguments(
        _ arguments: [String],
        environment: (String) -> String?,
        options: [Option]
    ) -> [String] {
        var fromEnvironment: [String] = []
        for option in options {
            guard let value = environment(option.variable) else { continue }
            if option.isFlag {
                if ["1", "true", "yes"].contains(value.lowercased()) { fromEnvironment.append("--\(option.name)") }
            } else {
                fromEnvironment += ["--\(option.name)", value]
            }
        }
        return fromEnvironment + arguments
    }

    /// `maxSessionsPerUser` → `max-sessions-per-user`, as ArgumentParser names options.
    static func kebabCase(_ name: String) -> String {
        var result = ""
        for character in name {
            if character.isUppercase, !result.isEmpty { result.append("-") }
            result += character.lowercased()
        }
        return result
    }
}

/// An `@OptionGroup`, seen by ``EnvironmentTwins`` through `Mirror`.
private protocol DeclaredOptionGroup {
    func declaredOptions() -> [EnvironmentTwins.Option]
}

extension OptionGroup: DeclaredOptionGroup {
    fileprivate func declaredOptions() -> [EnvironmentTwins.Option] {
        EnvironmentTwins.options(of: Value.self)
    }
}
