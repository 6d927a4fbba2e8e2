#if canImport(Glibc)
import Glibc
#endif

/// The process's limit of open file descriptors, which bounds how many connections it can hold.
enum DescriptorLimit {
    /// Raises the soft `RLIMIT_NOFILE` to the hard limit (at most 1,048,576) and returns the soft
    /// limit in force afterwards.
    static func raise() -> Int {
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { return 1024 }
        let wanted = min(limit.rlim_max, 1 << 20)
        if limit.rlim_cur < wanted {
            var raised = limit
            raised.rlim_cur = wanted
            if setrlimit(resource, &raised) == 0 { limit = raised }
        }
        return Int(clamping: limit.rlim_cur)
    }

    /// `RLIMIT_NOFILE` (the Glibc module imports it as a different type on different architectures).
    private static let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
}
