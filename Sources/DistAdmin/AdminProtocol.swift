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
        guard let members = try? JSONDecoder().decode([String: Member].self, from: Data(trimmed.utf8)) else {
            throw AdminError("request is not a JSON object")
        }
        guard case .value(.string(let cmd)) = members["cmd"], !cmd.isEmpty else {
            throw AdminError("request has no \"cmd\" string")
        }
        var arguments: [String: AdminValue] = [:]
        for (name, member) in members where name != "cmd" {
            guard case .value(let value) = member else {
                throw AdminError("argument \"\(name)\" must be a number or a string")
            }
            arguments[name] = value
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

/// A member of a request object as decoded: a number or a string, or anything else (refused
/// with its name).
enum Member: Decodable {
    case value(AdminValue)
    case other

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) {
            self = .value(.string(s))
        } else if let d = try? c.decode(Double.self) {
            self = .value(.number(d))
        } else {
            self = .other
        }
    }
}

public struct AdminError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Encodes a reply: a JSON object on one line, keys in snake_case (a property `rxPackets` is
/// `rx_packets`) and sorted, so replies are stable.
public enum AdminReply {
    public static func encode(_ reply: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(reply), let text = String(data: data, encoding: .utf8) else {
            return #"{"error":"reply could not be encoded","ok":false}"#
        }
        return text
    }

    public static func error(_ message: String) -> String {
        encode(Failure(error: message))
    }

    struct Failure: Encodable {
        let ok = false
        let error: String
    }
}
