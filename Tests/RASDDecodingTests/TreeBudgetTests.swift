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

    /// A band that has been observed asks for a trial once it has gone `trialInterval` steps
    /// without a verified node, and at the start of a request; a verified node resets it.
    @Test func bandsGoingUntriedAskForATrial() {
        var calibration = AcceptanceCalibration()
        // Never observed: its score is its estimate, no trial needed.
        #expect(!calibration.wantsTrial(score: 1, sources: .context))
        calibration.record(score: 1, sources: .context, accepted: false)
        for step in 1...AcceptanceCalibration.trialInterval {
            calibration.recordStep()
            #expect(calibration.wantsTrial(score: 1, sources: .context) == (step == AcceptanceCalibration.trialInterval))
        }
        // Another band is separate.
        #expect(!calibration.wantsTrial(score: 1, sources: .datastore))
        calibration.record(score: 1, sources: .context, accepted: true)
        #expect(!calibration.wantsTrial(score: 1, sources: .context))
        calibration.beginRequest()
        #expect(calibration.wantsTrial(score: 1, sources: .context))
    }

    /// A fused tree: datastore path a → a1 (scores 0.9, 0.8) and context path b → b1 (0.5,
    /// 0.45). Ranked by calibrated probability once the target has rejected the datastore's
    /// and accepted the context's nodes, the context path comes first; every prefix is a tree.
    @Test func rankingFollowsWhatTheTargetAcceptedAndKeepsParentsFirst() throws {
        var tree = TokenTree()
        let a = try tree.append(token: 1, parent: -1, score: 0.9, sources: .datastore)
        let b = try tree.append(token: 2, parent: -1, score: 0.5, sources: .context)
        let a1 = try tree.append(token: 3, parent: a, score: 0.8, sources: .datastore)
        let b1 = try tree.append(token: 4, parent: b, score: 0.45, sources: .context)
        let b2 = try tree.append(token: 5, parent: b, score: 0.45, sources: .datastore)

        // Nothing observed: the scores' own order (ties by index), parents first.
        var calibration = AcceptanceCalibration()
        #expect(calibration.ranked(tree).map(\.node) == [a, a1, b, b1, b2])

        for _ in 0..<50 {
            calibration.record(score: 0.9, sources: .datastore, accepted: false)
            calibration.record(score: 0.5, sources: .context, accepted: true)
        }
        let ranked = calibration.ranked(tree)
        #expect(ranked.map(\.node) == [b, b1, b2, a, a1])
        // b1 shares b's band (0.45 and 0.5: band 1) and so its high estimate; b2, a datastore
        // node in a band with no observations, keeps its score; a child never counts more than
        // its parent.
        let p = Dictionary(uniqueKeysWithValues: ranked.map { ($0.node, $0.probability) })
        let (pa, pa1, pb, pb1, pb2) = try (#require(p[a]), #require(p[a1]), #require(p[b]), #require(p[b1]), #require(p[b2]))
        #expect(pb > 0.95 && pb1 > 0.95 && pb1 <= pb)
        #expect(abs(pb2 - Double(Float(0.45))) < 1e-12)
        #expect(pa < 0.05 && pa1 <= pa)
        for (position, entry) in ranked.enumerated() {
            let parent = Int(tree.parents[entry.node])
            if parent >= 0 { #expect(ranked.prefix(position).contains { $0.node == parent }) }
        }
    }
}

/// The source gate: whichever combination of optional sources emits the most tokens per second.
@Suite struct SourceGateTests {
    typealias Choice = SourceGate.Choice

    /// Choices of `steps` steps where each choice emits `tokens[choice]` tokens in 5 ms, plus
    /// 1 ms for the drafter.
    static func run(_ gate: inout SourceGate, steps: Int, tokens: [Choice: Int]) -> [Choice] {
        (0..<steps).map { _ in
            let c = gate.choose()
            gate.record(c, tokens: tokens[c] ?? 1, seconds: c.contains(.drafter) ? 0.006 : 0.005)
            return c
        }
    }

    @Test func oneSourceTheFasterArmWinsAndTheOtherIsProbed() throws {
        var gate = SourceGate(sources: .drafter)
        // Warm-up: 4 steps with the drafter, then 4 without.
        #expect(Self.run(&gate, steps: 8, tokens: [:]) == [Choice](repeating: .drafter, count: 4) + [Choice](repeating: [], count: 4))
        // 1 token in 6 ms against 1 in 5 ms: go without. A try comes every 8th step; each lost
        // try doubles the turns the drafter sits out (skip 1, then 3), so it is tried at steps
        // 8, 24 and 56, then every 32nd.
        let slow = Self.run(&gate, steps: 96, tokens: [:])
        #expect(slow.indices.filter { slow[$0] == .drafter }.map { $0 + 1 } == [8, 24, 56, 88])
        // Now a drafted step emits 3 tokens: the next try sees it, and the drafter takes over.
        let fast = Self.run(&gate, steps: 96, tokens: [.drafter: 3])
        let takeover = try #require(fast.firstIndex(of: .drafter))
        #expect(takeover < SourceGate.probeInterval * SourceGate.maximumBackoff)
        #expect(fast[takeover...].filter { $0 == .drafter }.count >= 96 - takeover - 4)
        // Going without is tried after 8, 24 and 56 steps, and loses each time.
        let after = fast[(takeover + 1)...(takeover + 56)]
        #expect(after.indices.filter { after[$0] != .drafter }.map { $0 - takeover } == [8, 24, 56])
    }

    @Test func twoSourcesEveryCombinationIsAnArm() {
        var gate = SourceGate(sources: [.drafter, .datastore])
        // Warm-up visits all four combinations, both sources first.
        let warm = Self.run(&gate, steps: 16, tokens: [:])
        #expect(warm == [[.drafter, .datastore], .datastore, .drafter, []].flatMap { [Choice](repeating: $0, count: 4) })
        // The datastore alone pays (2 tokens in 5 ms): it leads, and the other three arms are
        // probed in turn.
        let run = Self.run(&gate, steps: 48, tokens: [.datastore: 2, [.drafter, .datastore]: 2])
        #expect(Set(run.filter { $0 != .datastore }) == [[.drafter, .datastore], .drafter, []])
        // Each try loses, so tries thin out to one in 4 turns: a quarter of the slots in the
        // long run (each arm's turn comes every third slot), and every arm is still tried.
        let long = Self.run(&gate, steps: 960, tokens: [.datastore: 2, [.drafter, .datastore]: 2])
        let tries = long.filter { $0 != .datastore }
        let slots = 960 / SourceGate.probeInterval
        #expect(tries.count <= slots / SourceGate.maximumBackoff + 1)
        for arm: Choice in [[.drafter, .datastore], .drafter, []] {
            #expect(tries.filter { $0 == arm }.count >= slots / (SourceGate.maximumBackoff * 3) - 1)
        }
    }
}
