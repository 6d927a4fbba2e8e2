/// The connection of one deferred request, as ``HTTPResponder`` sees it.
///
/// `@unchecked Sendable`: the connection is used only under the responder's lock, once to suspend (from
/// the access handler, while libmicrohttpd is processing the connection) and at most once to resume
/// (only while it is suspended: libmicrohttpd neither times out nor closes a suspended connection, and a
/// shutdown resumes every one before `MHD_stop_daemon`). After that it is never touched.
final class DeferredConnection: HTTPResponderTransport, @unchecked Sendable {
    private let connection: MHDConnection

    init(_ connection: MHDConnection) {
        self.connection = connection
    }

    func suspend() { connection.suspend() }

    func resume() { connection.resume() }
}
