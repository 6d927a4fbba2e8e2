internal import CMicroHTTPD
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Notices when the client of a *suspended* connection hangs up.
///
/// libmicrohttpd does not watch suspended connections ("While a connection is suspended, MHD will not
/// detect disconnects by the client", microhttpd.h 0.9.75), so an idle stream would otherwise stay open
/// until the next write. While a stream is parked its socket is registered here (`EPOLLRDHUP`, one-shot),
/// and one thread blocked in `epoll_wait` reports the hang-up. The registration is removed before the
/// connection is resumed, so the socket is never closed while registered.
///
/// A client that only shuts down its sending side (a TCP half-close) looks the same here as one that
/// closed the connection: both send a FIN, and `EPOLLRDHUP` reports it. Such a stream is ended as if the
/// client had hung up. Event-stream clients
/// (EventSource, curl, HTTP libraries) keep both directions open while they read.
///
/// If the monitor cannot watch a socket (logged once), or its thread has to stop, it says so through
/// `log`: the streams concerned are then noticed gone only at their next write (the keep-alive comment
/// at the latest).
///
/// Linux only (epoll and eventfd).
final class HangupMonitor: Sendable {
    private let epollFD: Int32
    private let wakeFD: Int32
    private let onHangup: @Sendable (UInt64) -> Void
    private let log: @Sendable (String) -> Void
    /// A failing `watch` is logged once: when it fails for a lasting reason (the epoll watch limit,
    /// memory), it fails at every park of every stream.
    private let watchFailureLogged = Atomic<Bool>(false)
    private let thread = Mutex<pthread_t?>(nil)

    /// Token reserved for the wake-up eventfd.
    private static let wakeToken: UInt64 = 0

    /// Starts the monitor thread.
    ///
    /// - Parameters:
    ///   - log: Receives a line when a socket cannot be watched or the monitor thread stops on an error.
    ///   - onHangup: Called on the monitor thread with the token of a socket whose peer hung up.
    init(log: @escaping @Sendable (String) -> Void, onHangup: @escaping @Sendable (UInt64) -> Void) throws {
        self.onHangup = onHangup
        self.log = log
        let epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else {
            throw MicroHTTPError(code: .systemResourceFailed, message: "epoll_create1 failed", cause: errno)
        }
        let wakeFD = eventfd(0, Int32(EFD_CLOEXEC) | Int32(EFD_NONBLOCK))
        guard wakeFD >= 0 else {
            let code = errno
            close(epollFD)
            throw MicroHTTPError(code: .systemResourceFailed, message: "eventfd failed", cause: code)
        }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = Self.wakeToken
        guard epoll_ctl(epollFD, EPOLL_CTL_ADD, wakeFD, &event) == 0 else {
            let code = errno
            close(wakeFD)
            close(epollFD)
            throw MicroHTTPError(code: .systemResourceFailed, message: "epoll_ctl failed", cause: code)
        }
        self.epollFD = epollFD
        self.wakeFD = wakeFD

        let retained = Unmanaged.passRetained(self).toOpaque()
        var handle = pthread_t()
        let result = pthread_create(
            &handle,
            nil,
            { argument in
                let monitor = Unmanaged<HangupMonitor>.fromOpaque(argument!).takeRetainedValue()
                monitor.run()
                return nil
            },
            retained
        )
        guard result == 0 else {
            // `self` is fully initialised: throwing runs `deinit`, which closes both descriptors.
            Unmanaged<HangupMonitor>.fromOpaque(retained).release()
            throw MicroHTTPError(code: .systemResourceFailed, message: "pthread_create failed", cause: result)
        }
        thread.withLock { $0 = handle }
    }

    deinit {
        close(wakeFD)
        close(epollFD)
    }

    /// Starts watching `fd` for a hang-up of its peer. Call only while the connection is suspended.
    func watch(fd: Int32, token: UInt64) {
        guard fd >= 0 else { return }
        var event = epoll_event()
        event.events = EPOLLRDHUP.rawValue | EPOLLONESHOT.rawValue
        event.data.u64 = token
        var result = epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event)
        if result != 0 && errno == EEXIST {
            result = epoll_ctl(epollFD, EPOLL_CTL_MOD, fd, &event)
        }
        if result != 0 {
            let code = errno
            if !watchFailureLogged.exchange(true, ordering: .relaxed) {
                log(
                    "MicroHTTP: cannot watch an idle stream for hang-ups (epoll_ctl: errno \(code)); such streams are noticed gone at their next write (further failures are not logged)"
                )
            }
        }
    }

    /// Stops watching `fd`. Call before the connection is resumed.
    func unwatch(fd: Int32) {
        guard fd >= 0 else { return }
        var event = epoll_event()
        _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, &event)
    }

    /// Stops and joins the monitor thread. Idempotent; must not be called from `onHangup`.
    func stop() {
        guard
            let handle = thread.withLock({ handle -> pthread_t? in
                defer { handle = nil }
                return handle
            })
        else { return }
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(wakeFD, $0.baseAddress, $0.count) }
        pthread_join(handle, nil)
    }

    private func run() {
        let capacity = 64
        var events = [epoll_event](repeating: epoll_event(), count: capacity)
        while true {
            let count = events.withUnsafeMutableBufferPointer { buffer in
                epoll_wait(epollFD, buffer.baseAddress, Int32(capacity), -1)
            }
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                log(
                    "MicroHTTP: the hang-up monitor stopped (epoll_wait: errno \(code)); idle streams are now noticed gone only at their next write"
                )
                return
            }
            for index in 0..<Int(count) {
                let token = events[index].data.u64
                if token == Self.wakeToken { return }
                onHangup(token)
            }
        }
    }
}
