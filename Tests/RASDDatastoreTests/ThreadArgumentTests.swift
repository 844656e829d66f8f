import RASDTestSupport
import Testing

/// The commands that run the model refuse thread counts the engine cannot take before loading
/// anything, naming the option (checked through the real executable).
@Suite struct ThreadArgumentTests {
    let exe = rasdIndexExecutable()

    @Test(arguments: [
        ("decode --prompt x --head-threads 0", "--head-threads must be in 1...256, not 0"),
        ("eval --threads 300", "--threads must be in 1...256, not 300"),
        ("bench draft-head --head-threads 999", "--head-threads must be in 1...256, not 999"),
        ("decode --prompt x --threads 0", "--threads must be in 1...256, not 0"),
    ])
    func outOfRangeThreadCountsAreRefusedByName(arguments: String, message: String) throws {
        let run = try shell("\(exe) \(arguments)")
        #expect(run.status != 0)
        #expect(run.err.contains(message), "\(run.err)")
    }
}
