import ArgumentParser
import SessionStorage

/// Where sessions live and how durably.
struct StorageOptions: ParsableArguments {
    /// The values of `--storage`.
    enum Backend: String, CaseIterable {
        case sqlite
        case memory
        case redis
    }

    @Option(
        help: """
            Where sessions live: sqlite (durable, in --data-dir), memory (lost on restart; tests, benchmarks)             or redis (shared by several instances; see the Redis options).
            """
    )
    var storage = "sqlite"

    @Option(help: "Directory of the SQLite storage (created if missing; locked while sessiond runs).")
    var dataDir = "./data"

    @Option(
        help: """
            When writes are acknowledged: commit (after the commit that holds them reached the OS; nothing \
            acknowledged is lost when sessiond crashes or is killed; flushed to disk every 250 ms), fsync (after \
            the commit is also flushed to disk; survives power loss) or interval (at once, committed every \
            100 ms; a crash can lose the last 100 ms).
            """
    )
    var durability = "commit"

    /// The chosen backend.
    func backend() throws -> Backend {
        try OptionValue.parse(Backend.self, "--storage", storage)
    }

    /// The SQLite storage's configuration.
    func storageConfiguration() throws -> SessionStorage.Configuration {
        let mode = try OptionValue.parse(SessionStorage.Durability.self, "--durability", durability)
        return SessionStorage.Configuration(dataDirectory: dataDir, durability: mode)
    }
}
