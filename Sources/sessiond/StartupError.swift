/// A configuration problem found before serving: sessiond logs it and exits with status 2.
struct StartupError: Error {
    var message: String

    init(_ message: String) {
        self.message = message
    }
}
