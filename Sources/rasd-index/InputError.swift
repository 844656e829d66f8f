/// A problem with the input of a command (not its arguments): printed as `Error: <message>`
/// without the usage text argument-parser adds to a `ValidationError`.
struct InputError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
