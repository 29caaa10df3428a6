import DistLog
import Foundation
import Logging
import Synchronization
import Testing

/// The daemons' log lines: the message alone (text), key=value pairs (logfmt) or a JSON object,
/// one a line, errors and warnings apart, below the level asked for nothing.
@Suite struct LineLogHandlerTests {
    final class Lines: Sendable {
        let lines = Mutex<[(String, Bool)]>([])
        func add(_ line: String, _ error: Bool) { lines.withLock { $0.append((line, error)) } }
        var all: [(String, Bool)] { lines.withLock { $0 } }
    }

    static func logger(_ format: LogFormat, _ level: Logger.Level, into lines: Lines) -> Logger {
        var log = Logger(label: "test") { _ in
            LineLogHandler(format: format, level: level) { lines.add($0, $1) }
        }
        log[metadataKey: "vnf"] = "vnf1"
        return log
    }

    @Test func eachFormatWritesOneLineAnEvent() throws {
        let lines = Lines()
        for format in LogFormat.allCases {
            let log = Self.logger(format, .info, into: lines)
            log.info("move 7 out: completed", metadata: ["move": "7", "peer": "198.18.100.2:7400"])
            log.warning("a \"quoted\" = value\nand a second line")
            log.debug("not written at info")
        }
        let all = lines.all
        #expect(all.count == 6)
        #expect(all[0] == ("move 7 out: completed", false))
        #expect(all[1].0.hasPrefix("a \"quoted\"") && all[1].1, "a warning goes to standard error")
        let logfmt = all[2].0
        #expect(logfmt.hasPrefix("ts=20") && logfmt.contains(" level=info move=7 peer=198.18.100.2:7400 vnf=vnf1 "))
        #expect(logfmt.hasSuffix(" msg=\"move 7 out: completed\""))
        #expect(all[3].0.hasSuffix(#"msg="a \"quoted\" = value\nand a second line""#), "\(all[3].0)")
        #expect(!all[3].0.contains("\n"))
        for (line, _) in all[4...] {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
            #expect(object["vnf"] == "vnf1" && object["ts"]?.hasSuffix("Z") == true)
            #expect(object["level"] == "info" || object["level"] == "warning")
        }
        let first = try JSONSerialization.jsonObject(with: Data(all[4].0.utf8)) as? [String: String]
        #expect(first?["msg"] == "move 7 out: completed" && first?["move"] == "7")
    }

    @Test func levelsAreNamedAsSwiftLogNamesThem() {
        #expect(LineLogHandler.level("WARNING") == .warning)
        #expect(LineLogHandler.level("trace") == .trace)
        #expect(LineLogHandler.level("loud") == nil)
        let lines = Lines()
        let log = Self.logger(.text, .error, into: lines)
        log.warning("below")
        log.error("at")
        #expect(lines.all.map(\.0) == ["at"])
    }
}
