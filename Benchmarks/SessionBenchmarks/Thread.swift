#if canImport(Glibc)
import Glibc
#endif

/// A plain POSIX thread running a closure, for a benchmark caller that must not share the
/// cooperative pool with the code under measurement.
final class Thread {
    private var handle = pthread_t()
    private let box: Box

    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    init(_ body: @escaping @Sendable () -> Void) {
        box = Box(body)
        let context = Unmanaged.passRetained(box).toOpaque()
        let result = pthread_create(
            &handle,
            nil,
            { context in
                let box = Unmanaged<Box>.fromOpaque(context!).takeRetainedValue()
                box.body()
                return nil
            },
            context
        )
        precondition(result == 0, "pthread_create failed")
    }

    func join() { pthread_join(handle, nil) }
}
