import Crypto
import DistChannel
import Foundation

/// `dist-channel-bench --crypto`: what sealing and opening a channel frame costs (AES-256-GCM,
/// the channel's since version 6), against tagging and verifying the same frame with
/// HMAC-SHA256 (its tag until version 5, which left the payload in the clear), per frame of a
/// redirected packet (300 bytes) and of a full frame (8,900); median of 5 runs, same invocation.
func cryptoBenchmark() {
    let key = SymmetricKey(data: [UInt8](repeating: 0x42, count: 32))
    let binding = ChannelFrame.Binding(nonce: 7, sender: 1, receiver: 2)
    let sender = ChannelCipher(key: key, binding: binding)
    let receiver = ChannelCipher(key: key, binding: binding.reversed)
    print("payload  AES-GCM seal+open ns/frame  HMAC-SHA256 tag+verify ns/frame  ratio")
    for size in [300, 8_900] {
        let frame = ChannelFrame(kind: .packets, moveID: 1, sequence: 1, payload: [UInt8](repeating: 0xA5, count: size))
        let iterations = size < 1000 ? 200_000 : 20_000
        func median(_ body: () -> Void) -> Double {
            var runs: [Double] = []
            for _ in 0..<5 {
                let start = DispatchTime.now().uptimeNanoseconds
                body()
                runs.append(Double(DispatchTime.now().uptimeNanoseconds - start) / Double(iterations))
            }
            return runs.sorted()[2]
        }
        var counter: UInt64 = 0
        var opened = 0
        let aead = median {
            for _ in 0..<iterations {
                counter &+= 1
                if (try? ChannelFrame.opened(frame.sealed(with: sender, counter: counter), with: receiver)) != nil {
                    opened += 1
                }
            }
        }
        let bytes = [UInt8](repeating: 0xA5, count: ChannelFrame.headerSize + size)
        var verified = 0
        let hmac = median {
            for _ in 0..<iterations {
                let tag = HMAC<SHA256>.authenticationCode(for: bytes, using: key)
                if HMAC<SHA256>.isValidAuthenticationCode(tag, authenticating: bytes, using: key) { verified += 1 }
            }
        }
        precondition(opened == 5 * iterations && verified == 5 * iterations)
        print(String(format: "%7d  %27.0f  %31.0f  %5.2f", size, aead, hmac, aead / hmac))
    }
}
