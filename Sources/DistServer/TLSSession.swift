import NIOCore
import NIOEmbedded
import NIOSSL
import NIOTLS

/// The certificates of a TLS endpoint: its own chain and key, and the CA its peers' certificates
/// must chain to (mutual TLS, version 1.3 only; a peer without a certificate, with one of another
/// CA or out of its validity is refused in the handshake).
public enum ControlTLS {
    public struct Files: Sendable, Equatable {
        public var certificate: String
        public var key: String
        public var ca: String
        public init(certificate: String, key: String, ca: String) {
            self.certificate = certificate
            self.key = key
            self.ca = ca
        }
    }

    /// A server's context: it asks every client for a certificate and refuses one without.
    public static func server(_ files: Files) throws -> NIOSSLContext {
        var config = TLSConfiguration.makeServerConfigurationWithMTLS(
            certificateChain: try NIOSSLCertificate.fromPEMFile(files.certificate).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: files.key, format: .pem)),
            trustRoots: .file(files.ca))
        config.minimumTLSVersion = .tlsv13
        return try NIOSSLContext(configuration: config)
    }

    /// A client's context: its certificate for the server, and the CA the server's must chain to
    /// (peers are named by address, so the name in the certificate is not checked).
    public static func client(_ files: Files) throws -> NIOSSLContext {
        var config = TLSConfiguration.makeClientConfiguration()
        config.certificateChain = try NIOSSLCertificate.fromPEMFile(files.certificate).map { .certificate($0) }
        config.privateKey = .privateKey(try NIOSSLPrivateKey(file: files.key, format: .pem))
        config.trustRoots = .file(files.ca)
        config.certificateVerification = .noHostnameVerification
        config.minimumTLSVersion = .tlsv13
        return try NIOSSLContext(configuration: config)
    }
}

/// One client's TLS connection on a ``SocketServer``, driven by the server's own poll loop: the
/// bytes read from the socket go into NIOSSL's handler on a pipeline of its own, and what it
/// gives back (the handshake's records, the requests decrypted, the replies sealed) is taken out
/// at once. No thread and no event loop of its own: the main lcore stays the only one serving.
final class TLSSession {
    let channel = EmbeddedChannel()
    let watcher = HandshakeWatcher()

    init(context: NIOSSLContext) throws {
        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
        try channel.pipeline.syncOperations.addHandler(watcher)
        // (Active, as a connected socket's channel is: the handler waits for the client's hello.)
        _ = try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    }

    deinit {
        channel.close(promise: nil)
        // NIOSSL waits for the client's close_notify until its shutdown timeout: the socket is
        // gone, so let that time pass at once (the pipeline is torn down then).
        channel.embeddedEventLoop.advanceTime(by: .seconds(10))
    }

    /// Whether the handshake is done (the client's certificate verified).
    var established: Bool { watcher.done }

    /// Takes bytes from the socket: the plaintext they complete, and the records to send back.
    /// Throws when the TLS session fails (a bad certificate, a plaintext client); what to send
    /// then (the alert) is in ``pendingRecords()``.
    func received(_ bytes: ArraySlice<UInt8>) throws -> [UInt8] {
        try channel.writeInbound(ByteBuffer(bytes: bytes))
        var plain: [UInt8] = []
        while let buffer = try channel.readInbound(as: ByteBuffer.self) { plain += buffer.readableBytesView }
        return plain
    }

    /// Seals `message` for the client; the records go out with ``pendingRecords()``.
    func seal(_ message: [UInt8]) throws {
        try channel.writeOutbound(ByteBuffer(bytes: message))
    }

    /// The records waiting to go to the client.
    func pendingRecords() -> [UInt8] {
        var out: [UInt8] = []
        while let buffer = try? channel.readOutbound(as: ByteBuffer.self) { out += buffer.readableBytesView }
        return out
    }
}

/// Notes the handshake's end (NIOSSL says so with a user event).
final class HandshakeWatcher: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    var done = false

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { done = true }
        context.fireUserInboundEventTriggered(event)
    }
}
