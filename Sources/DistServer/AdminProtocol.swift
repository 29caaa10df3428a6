import Foundation

/// One admin request: a JSON object on one line with a `cmd` string and optional arguments,
/// e.g. `{"cmd":"flows","limit":10}`. A bare word (`stats`) is accepted as `{"cmd":"stats"}`.
public struct AdminRequest: Sendable, Equatable {
    public var command: String
    /// The other members of the request object (admin arguments are numbers or strings).
    public var arguments: [String: AdminValue]

    public init(command: String, arguments: [String: AdminValue] = [:]) {
        self.command = command
        self.arguments = arguments
    }

    /// Parses one request line. Throws ``AdminError`` with a message fit for the reply.
    public static func parse(_ line: String) throws -> AdminRequest {
        let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw AdminError("empty request") }
        if trimmed.allSatisfy({ $0.isLetter || $0 == "_" || $0 == "-" }) {
            return AdminRequest(command: trimmed)
        }
        guard let data = trimmed.data(using: .utf8),
            let object = try? JSONSerialization.jsonObject(with: data),
            let dict = object as? [String: Any]
        else { throw AdminError("request is not a JSON object") }
        guard let cmd = dict["cmd"] as? String, !cmd.isEmpty else {
            throw AdminError("request has no \"cmd\" string")
        }
        var arguments: [String: AdminValue] = [:]
        for (name, value) in dict where name != "cmd" {
            switch value {
            case let n as NSNumber:
                arguments[name] = .number(n.doubleValue)
            case let s as String:
                arguments[name] = .string(s)
            default:
                throw AdminError("argument \"\(name)\" must be a number or a string")
            }
        }
        return AdminRequest(command: cmd, arguments: arguments)
    }

    /// A non-negative integer argument, `defaultValue` when absent; throws when malformed.
    public func integer(_ name: String, default defaultValue: Int, max: Int = Int.max) throws -> Int {
        guard let value = arguments[name] else { return defaultValue }
        guard case .number(let d) = value, d >= 0, d == d.rounded(), d <= Double(max) else {
            throw AdminError("argument \"\(name)\" must be an integer between 0 and \(max)")
        }
        return Int(d)
    }

    public func string(_ name: String) throws -> String? {
        guard let value = arguments[name] else { return nil }
        guard case .string(let s) = value else { throw AdminError("argument \"\(name)\" must be a string") }
        return s
    }
}

public enum AdminValue: Sendable, Equatable {
    case number(Double)
    case string(String)
}

public struct AdminError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Encodes a reply: a JSON object on one line, keys sorted so replies are stable.
public enum AdminReply {
    public static func encode(_ object: [String: Any]) -> String {
        guard JSONSerialization.isValidJSONObject(object),
            let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]),
            let text = String(data: data, encoding: .utf8)
        else { return #"{"error":"reply could not be encoded","ok":false}"# }
        return text
    }

    public static func error(_ message: String) -> String {
        encode(["ok": false, "error": message])
    }
}
