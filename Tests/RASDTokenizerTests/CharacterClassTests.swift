import Foundation
import RASDTokenizer
import Testing

/// The hand-written pre-tokenizer classifies every Unicode scalar (letter, number, whitespace,
/// other) as the reference's regex engine does. Golden/classes.json holds the reference's
/// classes, found by probing its pre-tokenizer; the same probes run here.
@Suite struct CharacterClassTests {
    static func swiftClass(_ c: Unicode.Scalar, _ pre: PreTokenizer) -> String {
        let s = String(c)
        if pre.words(in: "a" + s).count == 1 { return "L" }
        if pre.words(in: "!" + s).count == 1 { return "O" }
        if pre.words(in: s + s).count == 1 { return "S" }
        return "N"
    }

    @Test func everyScalarHasTheReferenceClass() throws {
        let data = try Data(contentsOf: goldenDirectory.appendingPathComponent("classes.json"))
        let runs = try #require(try JSONSerialization.jsonObject(with: data) as? [[Any]])
        var starts: [UInt32] = []
        var classes: [String] = []
        for run in runs {
            starts.append(try #require((run[0] as? NSNumber)?.uint32Value))
            classes.append(try #require(run[1] as? String))
        }
        #expect(starts.first == 0x80 && runs.count > 1000)
        let pre = referenceTokenizer.preTokenizer
        var mismatches: [String] = []
        var run = 0
        for v in UInt32(0x80)...0x10FFFF {
            while run + 1 < starts.count && starts[run + 1] <= v { run += 1 }
            guard let scalar = Unicode.Scalar(v) else { continue }  // surrogates
            let ours = Self.swiftClass(scalar, pre)
            if ours != classes[run] {
                mismatches.append(String(format: "U+%04X: reference %@, rasd %@", v, classes[run], ours))
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) scalars differ, first: \(mismatches.prefix(20).joined(separator: "; "))")
    }
}
