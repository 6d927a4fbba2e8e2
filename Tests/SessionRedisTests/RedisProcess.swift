@testable import SessionRedis

#if canImport(Glibc)
import Glibc
#endif

/// A `redis-server` of a test's own, on a free loopback port, without persistence (spawned with
/// `posix_spawn`, stopped with SIGKILL and `waitpid`).
///
/// Free ports are taken below Linux's ephemeral range (32768 and up), so no outgoing connection made
/// between ``freePort()`` and the server's `bind` can take the port. A server that exits before it
/// accepts connections (its port taken all the same) is an error naming the port, never a test that
/// talks to somebody else's server.
final class RedisProcess {
    let port: Int
    /// Configuration directives after the defaults (`["--cluster-enabled", "yes"]`).
    let extraArguments: [String]
    private var pid: pid_t = 0

    init(port: Int? = nil, extraArguments: [String] = []) {
        self.port = port ?? Self.freePort()
        self.extraArguments = extraArguments
    }

    /// Starts the server and waits until it accepts connections.
    func start() throws {
        let arguments =
            [
                "redis-server", "--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", "/tmp", "--logfile", "",
            ] + extraArguments
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let result = posix_spawnp(&pid, "redis-server", &actions, nil, &argv, environ)
        guard result == 0 else { throw RedisProcessError(message: "posix_spawnp redis-server: \(result)") }
        for _ in 0..<300 {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                pid = 0
                throw RedisProcessError(message: "redis-server exited at start (port \(port) taken?)")
            }
            if Self.accepts(port: port), answersAsItself() { return }
            usleep(10_000)
        }
        throw RedisProcessError(message: "redis-server did not start on port \(port)")
    }

    /// Whether the server on the port is this process (`INFO server` names its process id).
    private func answersAsItself() -> Bool {
        let client = probe()
        defer { client.close() }
        guard case .success(let info) = client.sendAndWait(["INFO", "server"]), let text = info.string else {
            return false
        }
        return text.contains("process_id:\(pid)\r\n")
    }

    /// Whether a client of the server is blocked (in a `BLPOP`, a `WAIT`, ...) within 5 s.
    func waitUntilAClientIsBlocked() -> Bool {
        let client = probe()
        defer { client.close() }
        for _ in 0..<500 {
            if (try? client.sendAndWait(["INFO", "clients"]).get().string)?.contains("blocked_clients:1\r\n") == true {
                return true
            }
            usleep(10_000)
        }
        return false
    }

    /// A client of the server, for the checks above (closed by the caller).
    private func probe() -> RedisClient {
        RedisClient(configuration: .init(endpoint: RedisEndpoint(host: "127.0.0.1", port: port), timeout: .seconds(1)))
    }

    /// Stops and resumes the server's process (SIGSTOP, SIGCONT): a server that does not answer.
    func pause() { if pid > 0 { kill(pid, SIGSTOP) } }
    func resume() { if pid > 0 { kill(pid, SIGCONT) } }

    /// The server's process id (0 when it is not running).
    var processID: pid_t { pid }

    func stop() {
        guard pid > 0 else { return }
        kill(pid, SIGCONT)
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        pid = 0
    }

    deinit { stop() }

    /// A loopback port in 20000..<32768 that nothing listens on or is bound to now.
    static func freePort() -> Int {
        while true {
            let port = Int.random(in: 20000..<32768)
            if canBind(port: port) { return port }
        }
    }

    private static func canBind(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}

struct RedisProcessError: Error {
    var message: String
}
