import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The data directory, checked and locked for one process: `sessiond.lock` in it is held with
/// `flock(LOCK_EX)` for as long as this value is open, so a second `sessiond` on the same
/// directory stops with `data_directory_locked` instead of corrupting the first one's file.
///
/// A missing directory is created (mode 0700) when its parent exists.
final class DataDirectory: Sendable {
    let path: String
    /// The lock file's descriptor; -1 once released.
    private let lockDescriptor: Mutex<Int32>

    init(path: String) throws(StorageError) {
        let path = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        self.path = path
        var info = stat()
        if stat(path, &info) != 0 {
            guard errno == ENOENT else {
                throw StorageError(
                    code: .directoryNotWritable,
                    message: "cannot inspect data directory \(path): \(Self.describe(errno))"
                )
            }
            guard mkdir(path, 0o700) == 0 || errno == EEXIST else {
                let reason = errno
                throw StorageError(
                    code: reason == ENOENT ? .directoryMissing : .directoryNotWritable,
                    message: reason == ENOENT
                        ? "data directory \(path) does not exist and its parent directory is missing; create it or pass --data-dir"
                        : "cannot create data directory \(path): \(Self.describe(reason))"
                )
            }
        } else if info.st_mode & S_IFMT != S_IFDIR {
            throw StorageError(code: .directoryMissing, message: "data directory \(path) exists but is not a directory")
        }
        guard access(path, W_OK | X_OK) == 0 else {
            throw StorageError(
                code: .directoryNotWritable,
                message: "data directory \(path) is not writable by this user: \(Self.describe(errno))"
            )
        }
        let lockPath = path + "/sessiond.lock"
        let descriptor = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw StorageError(
                code: .directoryNotWritable,
                message: "cannot create \(lockPath): \(Self.describe(errno))"
            )
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno
            let holder = Self.readHolder(descriptor)
            close(descriptor)
            guard reason == EWOULDBLOCK else {
                throw StorageError(code: .ioError, message: "cannot lock \(lockPath): \(Self.describe(reason))")
            }
            throw StorageError(
                code: .directoryLocked,
                message: "data directory \(path) is in use by another sessiond"
                    + (holder.isEmpty ? "" : " (pid \(holder))") + "; stop it or use another --data-dir"
            )
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(descriptor, 0)
        _ = pid.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
        lockDescriptor = Mutex(descriptor)
    }

    deinit { release() }

    /// Releases the directory's lock (closing the descriptor drops the `flock`). Idempotent.
    func release() {
        lockDescriptor.withLock { descriptor in
            guard descriptor >= 0 else { return }
            // Unlock explicitly: a child forked meanwhile (before its exec closes the inherited
            // descriptor) would otherwise keep the lock alive after our close.
            _ = flock(descriptor, LOCK_UN)
            close(descriptor)
            descriptor = -1
        }
    }

    /// Size in bytes of a file in the directory, or 0 when it does not exist.
    func fileSize(_ name: String) -> Int64 {
        var info = stat()
        return stat(path + "/" + name, &info) == 0 ? Int64(info.st_size) : 0
    }

    private static func readHolder(_ descriptor: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return "" }
        return String(decoding: buffer[..<count], as: UTF8.self).filter(\.isNumber)
    }

    static func describe(_ code: Int32) -> String { String(cString: strerror(code)) }
}
