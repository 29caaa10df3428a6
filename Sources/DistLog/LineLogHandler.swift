import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// How a log line is written: `text`, the message as it reads (for people; metadata left out);
/// `logfmt`, `key=value` pairs (time, level, the metadata, the message) for log tools; `json`,
/// one JSON object a line for log shippers.
public enum LogFormat: String, CaseIterable, Sendable {
    case text, logfmt, json
}

/// One line per event on the process's standard output (errors and warnings on standard
/// error), written with one `write(2)` so that lines from several threads do not interleave
/// and reach a pipe at once.
public struct LineLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    let format: LogFormat
    let sink: @Sendable (_ line: String, _ error: Bool) -> Void

    public init(
        format: LogFormat, level: Logger.Level,
        sink: @escaping @Sendable (_ line: String, _ error: Bool) -> Void = LineLogHandler.write
    ) {
        self.format = format
        logLevel = level
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let all = event.metadata.map { metadata.merging($0) { $1 } } ?? metadata
        sink(
            Self.line(format, level: event.level, message: event.message.description, metadata: all, at: Date()),
            event.level >= .warning)
    }

    /// The line for one event (no newline).
    public static func line(
        _ format: LogFormat, level: Logger.Level, message: String, metadata: Logger.Metadata, at date: Date
    ) -> String {
        switch format {
        case .text:
            return message
        case .logfmt:
            var parts = ["ts=\(timestamp(date))", "level=\(level)"]
            for key in metadata.keys.sorted() { parts.append("\(key)=\(logfmtValue("\(metadata[key]!)"))") }
            parts.append("msg=\(logfmtValue(message))")
            return parts.joined(separator: " ")
        case .json:
            var object: [String: String] = ["ts": timestamp(date), "level": "\(level)", "msg": message]
            for (key, value) in metadata where object[key] == nil { object[key] = "\(value)" }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
            return String(decoding: data, as: UTF8.self)
        }
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    /// A value as logfmt writes it: bare when it has no space, quote or equals sign, else quoted
    /// with `"` and `\` escaped (and control characters as `\n`, `\t`, `\u{..}`).
    static func logfmtValue(_ value: String) -> String {
        let plain =
            !value.isEmpty
            && value.unicodeScalars.allSatisfy { $0.value > 0x20 && $0 != "\"" && $0 != "=" && $0 != "\\" }
        if plain { return value }
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 {
                    out += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// Writes `line` and a newline to standard output, or standard error.
    public static let write: @Sendable (String, Bool) -> Void = { line, error in
        var bytes = Array(line.utf8)
        bytes.append(0x0A)
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(error ? 2 : 1, $0.baseAddress! + sent, $0.count - sent) }
            if n <= 0 { return }
            sent += n
        }
    }

    /// The level named `text` (swift-log's names: trace, debug, info, notice, warning, error,
    /// critical), or nil.
    public static func level(_ text: String) -> Logger.Level? { Logger.Level(rawValue: text.lowercased()) }
}
