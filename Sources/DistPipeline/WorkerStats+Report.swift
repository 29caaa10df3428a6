import DistPacket

extension WorkerStats {
    /// The counters as the admin socket's `stats` and `final-stats-json` give them (keys in
    /// snake_case when encoded with ``AdminReply``'s encoder: `rxPackets` is `rx_packets`).
    public struct Report: Encodable, Equatable, Sendable {
        public struct Flows: Encodable, Equatable, Sendable {
            public var active, created, expired, removed, tableFull, markedPackets: UInt64
        }
        public struct Events: Encodable, Equatable, Sendable {
            public var raised, held, holdOverflow, lost, replayed, pacedReleases: UInt64
        }
        /// A Move's packets and frames (`ringFull`: redirected packets the transfer ring could
        /// not take; `busyNs`: the transfer lcore's time in rounds that did work).
        public struct Transfer: Encodable, Equatable, Sendable {
            public var redirected, ringFull, channelFramesSent, delivered, busyNs: UInt64
            public var importRefused, duplicatesDropped, markers, markersForged, gatesClosedLate: UInt64
        }
        public struct Handoff: Encodable, Equatable, Sendable {
            public var handedOff, received, ringFull: UInt64
        }
        public struct Detection: Encodable, Equatable, Sendable {
            public var records, signatureRuns, matchLimitHits, assets, refused, evicted: UInt64
        }

        public var rxPackets, rxBytes, txPackets, txDropped, txBacklogHigh, bursts, loops: UInt64
        /// Frames by network and transport layer, and by parse issue (those seen only).
        public var l3, l4, parse: [String: UInt64]
        public var flows: Flows
        public var events: Events
        public var transfer: Transfer
        public var handoff: Handoff
        public var detection: Detection
    }

    /// Named counters, for the admin socket and the final statistics.
    public var report: Report {
        var parse: [String: UInt64] = [:]
        for issue in ParseIssue.allCases where issues[Int(issue.rawValue)] != 0 {
            parse[issue.name] = issues[Int(issue.rawValue)]
        }
        var l3s: [String: UInt64] = [:]
        for k in L3Kind.allCases { l3s["\(k)"] = l3[Int(k.rawValue)] }
        var l4s: [String: UInt64] = [:]
        for k in L4Kind.allCases { l4s["\(k)"] = l4[Int(k.rawValue)] }
        return Report(
            rxPackets: rxPackets, rxBytes: rxBytes, txPackets: txPackets, txDropped: txDropped,
            txBacklogHigh: txBacklogHigh, bursts: bursts, loops: loops, l3: l3s, l4: l4s, parse: parse,
            flows: Report.Flows(
                active: activeFlows, created: flows.created, expired: flows.expired, removed: flows.removed,
                tableFull: flows.tableFull, markedPackets: flows.markedPackets),
            events: Report.Events(
                raised: eventsRaised, held: eventsHeld, holdOverflow: holdOverflow, lost: eventsLost,
                replayed: eventsReplayed, pacedReleases: pacedReleases),
            transfer: Report.Transfer(
                redirected: redirected, ringFull: transferDropped, channelFramesSent: channelFramesSent,
                delivered: delivered, busyNs: transferBusyNanoseconds, importRefused: importRefused,
                duplicatesDropped: duplicatesDropped, markers: markers, markersForged: markersForged,
                gatesClosedLate: gatesClosedLate),
            handoff: Report.Handoff(handedOff: handedOff, received: handoffReceived, ringFull: handoffRingFull),
            detection: Report.Detection(
                records: assetRecords, signatureRuns: signatureRuns, matchLimitHits: matchLimitHits,
                assets: assets, refused: assetsRefused, evicted: assetsEvicted))
    }
}
