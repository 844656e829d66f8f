import RASDDecoding
import RASDTrees
import Testing

/// The budget controller's acceptance calibration and what it carries into a new request.
@Suite struct AcceptanceCalibrationTests {
    @Test func observationsMoveTheScoreAndANewRequestKeepsOnlyAFew() {
        var calibration = AcceptanceCalibration()
        // Nothing observed: the score is the probability.
        #expect(calibration.probability(score: 0.5, sources: .context) == 0.5)
        for _ in 0..<100 { calibration.record(score: 0.5, sources: .context, accepted: false) }
        for i in 0..<100 { calibration.record(score: 0.3, sources: .datastore, accepted: i % 2 == 0) }
        // Prior 0.5 with weight 2 against 0 of 100.
        #expect(abs(calibration.probability(score: 0.5, sources: .context) - 1.0 / 102) < 1e-12)
        // Other sources and bands are separate.
        #expect(calibration.probability(score: 0.5, sources: .draft) == 0.5)
        #expect(abs(calibration.probability(score: 0.3, sources: .datastore) - (50 + 2 * Double(Float(0.3))) / 102) < 1e-9)

        // A new request keeps 8 observations per band, in proportion.
        calibration.beginRequest()
        #expect(abs(calibration.probability(score: 0.5, sources: .context) - 1.0 / 10) < 1e-12)
        #expect(abs(calibration.probability(score: 0.3, sources: .datastore) - (4 + 2 * Double(Float(0.3))) / 10) < 1e-9)
        // ...so this request's own evidence takes over quickly.
        for _ in 0..<8 { calibration.record(score: 0.5, sources: .context, accepted: true) }
        #expect(abs(calibration.probability(score: 0.5, sources: .context) - 9.0 / 18) < 1e-12)
        // Bands with few observations are untouched by the discount.
        var few = AcceptanceCalibration()
        for _ in 0..<3 { few.record(score: 0.9, sources: .draft, accepted: true) }
        let before = few.probability(score: 0.9, sources: .draft)
        few.beginRequest()
        #expect(few.probability(score: 0.9, sources: .draft) == before)
    }
}

/// The draft gate: drafting or not, whichever emits more tokens per second.
@Suite struct DraftGateTests {
    /// Decisions of `steps` steps where a drafted step emits `drafted` tokens in 6 ms and a
    /// skipped one `skipped` tokens in 5 ms.
    static func run(_ gate: inout DraftGate, steps: Int, drafted: Int, skipped: Int) -> [Bool] {
        (0..<steps).map { _ in
            let d = gate.shouldDraft()
            gate.record(drafted: d, tokens: d ? drafted : skipped, seconds: d ? 0.006 : 0.005)
            return d
        }
    }

    @Test func theFasterArmWinsAndTheOtherIsProbed() throws {
        var gate = DraftGate()
        // Warm-up: 4 drafted steps, then 4 without.
        #expect(Self.run(&gate, steps: 8, drafted: 1, skipped: 1) == [true, true, true, true, false, false, false, false])
        // 1 token in 6 ms against 1 in 5 ms: skip, trying the drafter every 8th step.
        let slow = Self.run(&gate, steps: 16, drafted: 1, skipped: 1)
        #expect(slow == (1...16).map { $0 % DraftGate.probeInterval == 0 })
        // Now a drafted step emits 3 tokens: the next probe sees it, drafting takes over, and
        // skipping is what gets probed.
        let fast = Self.run(&gate, steps: 40, drafted: 3, skipped: 1)
        let takeover = try #require(fast.firstIndex(of: true))
        #expect(takeover < DraftGate.probeInterval)
        #expect(fast.suffix(32).filter { !$0 }.count == 32 / DraftGate.probeInterval)
    }
}
