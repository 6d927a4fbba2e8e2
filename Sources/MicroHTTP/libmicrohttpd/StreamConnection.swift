/// The connection of one stream, as ``HTTPStreamWriter`` sees it: parked (suspended and watched for a
/// hang-up) when there is nothing to send, unparked when there is.
///
/// `@unchecked Sendable`: the connection is used only under the writer's lock, while it is alive (a
/// suspended connection cannot be closed by libmicrohttpd, and a resumed one is not touched again until
/// its own content reader parks it).
final class StreamConnection: HTTPStreamTransport, @unchecked Sendable {
    private let connection: MHDConnection
    private let socket: Int32
    private let token: UInt64
    private let monitor: HangupMonitor

    init(_ connection: MHDConnection, token: UInt64, monitor: HangupMonitor) {
        self.connection = connection
        self.socket = connection.socket
        self.token = token
        self.monitor = monitor
    }

    func park() {
        connection.suspend()
        monitor.watch(fd: socket, token: token)
    }

    func unpark() {
        monitor.unwatch(fd: socket)
        connection.resume()
    }
}
