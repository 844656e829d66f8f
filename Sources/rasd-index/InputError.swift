import ArgumentParser

/// A problem with the input of a command (not its arguments): printed as `Error: <message>`
/// without the usage text argument-parser adds to a `ValidationError`.
struct InputError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Checks `--threads` and `--head-threads` (the engine takes 1...256 threads) before anything is
/// loaded, naming the option.
func validateThreads(_ threads: Int, head: Int?) throws {
    guard (1...256).contains(threads) else { throw ValidationError("--threads must be in 1...256, not \(threads)") }
    if let head, !(1...256).contains(head) { throw ValidationError("--head-threads must be in 1...256, not \(head)") }
}
