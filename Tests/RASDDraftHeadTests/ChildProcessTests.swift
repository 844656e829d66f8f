import Foundation
import RASDDraftHead
import Synchronization
import Testing

/// The training pipeline's child processes: every line of their standard error reaches the
/// log, in order and before `run` returns, and a failure names the script.
@Suite struct ChildProcessTests {
    @Test func everyErrorLineIsLoggedInOrderBeforeRunReturns() throws {
        let logged = Mutex<[String]>([])
        let script = "i=0; while [ $i -lt 3000 ]; do echo line$i >&2; i=$((i+1)); done; printf last >&2; echo out; exit 3"
        #expect {
            try DraftHeadTraining.run(["sh", "-c", script], log: { line in logged.withLock { $0.append(line) } }, capture: true)
        } throws: { error in
            "\(error)".contains("failed (exit 3)")
        }
        let lines = logged.withLock { $0 }
        #expect(lines == (0..<3000).map { "line\($0)" } + ["last"])
    }

    @Test func standardOutputIsCapturedOnSuccess() throws {
        let output = try DraftHeadTraining.run(["sh", "-c", "echo hello; echo note >&2"], log: { _ in }, capture: true)
        #expect(output == "hello\n")
    }
}
