import Foundation
import RASDCorpus

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Shows corpus progress on standard error: a redrawn bar on a terminal, a plain log line
/// every few seconds otherwise (logs, CI).
final class ProgressDisplay {
    private let label: String
    private let isTerminal = isatty(2) != 0
    private var lastLog = Date.distantPast
    private var drewBar = false

    init(label: String) { self.label = label }

    func update(_ p: CorpusProgress) {
        if isTerminal {
            let width = 28
            let filled = Int(p.fraction * Double(width))
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            let line = "\(label) [\(bar)] \(Int(p.fraction * 100))%  files \(p.filesDone)/\(p.filesTotal)  "
                + "\(Self.count(p.tokens)) tokens  \(Self.count(Int(p.tokensPerSecond))) tok/s  ETA \(Self.duration(p.eta))"
            FileHandle.standardError.write(Data(("\r" + line + "\u{1B}[K").utf8))
            drewBar = true
        } else if Date().timeIntervalSince(lastLog) >= 5 || p.fraction >= 1 {
            lastLog = Date()
            let line = "\(label): \(Int(p.fraction * 100))% files \(p.filesDone)/\(p.filesTotal) "
                + "tokens \(p.tokens) (\(Int(p.tokensPerSecond)) tok/s) skipped \(p.skipped) ETA \(Self.duration(p.eta))\n"
            FileHandle.standardError.write(Data(line.utf8))
        }
    }

    /// Ends the bar's line before other output.
    func finish() {
        if drewBar { FileHandle.standardError.write(Data("\n".utf8)) }
        drewBar = false
    }

    static func count(_ n: Int) -> String {
        switch n {
        case ..<10_000: return "\(n)"
        case ..<10_000_000: return String(format: "%.1fk", Double(n) / 1e3)
        default: return String(format: "%.1fM", Double(n) / 1e6)
        }
    }

    static func duration(_ seconds: Double?) -> String {
        guard let s = seconds, s.isFinite else { return "--:--" }
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
    }
}
