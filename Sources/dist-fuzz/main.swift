import CFuzzDriver
import Foundation

// dist-fuzz TARGET [libFuzzer options and corpus directories]: runs one decoder under libFuzzer
// (built with -sanitize=fuzzer,address: deploy/fuzz.sh builds and runs them all);
// dist-fuzz --seeds DIR writes each target's seed inputs to DIR/TARGET/.

let usage = "usage: dist-fuzz TARGET [libFuzzer options] [CORPUS...] | dist-fuzz --seeds DIR | dist-fuzz --list"
var arguments = CommandLine.arguments

func fail(_ text: String) -> Never {
    FileHandle.standardError.write(Data((text + "\n").utf8))
    exit(2)
}

if arguments.count == 2 && arguments[1] == "--list" {
    for t in Targets.all { print("\(t.name)\t\(t.about)") }
    exit(0)
}
if arguments.count == 3 && arguments[1] == "--seeds" {
    for t in Targets.all {
        let dir = URL(fileURLWithPath: arguments[2]).appendingPathComponent(t.name)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for (i, seed) in t.seeds().enumerated() {
            try Data(seed).write(to: dir.appendingPathComponent(String(format: "seed-%03d", i)))
        }
    }
    exit(0)
}
guard arguments.count >= 2, let target = Targets.all.first(where: { $0.name == arguments[1] }) else { fail(usage) }

/// The target libFuzzer calls (a C callback takes no context: a global holds it).
nonisolated(unsafe) var selected: (([UInt8]) -> Void)? = target.run

/// libFuzzer's entry point, which its driver refers to (the driver is handed the same).
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    selected?(size == 0 || data == nil ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

// libFuzzer sees the program name and what follows the target's name.
arguments.remove(at: 1)
var argc = Int32(arguments.count)
var cStrings: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
let code = cStrings.withUnsafeMutableBufferPointer { buffer -> Int32 in
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = buffer.baseAddress
    return dist_fuzz_run(&argc, &argv) { data, size in fuzzOne(data, size) }
}
if code == -1 { fail("dist-fuzz was built without -sanitize=fuzzer: build it with deploy/fuzz.sh") }
exit(code)
