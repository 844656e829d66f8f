import Foundation
import RASDDatastore

/// Writes documents as a uint32 token file and a uint64 starts file.
func writeTokenFiles(_ documents: [[UInt32]], tokens: String, starts: String, closingOffset: Bool) throws {
    var t = Data(), s = Data()
    var offset: UInt64 = 0
    for d in documents {
        withUnsafeBytes(of: offset.littleEndian) { s.append(contentsOf: $0) }
        for id in d { withUnsafeBytes(of: id.littleEndian) { t.append(contentsOf: $0) } }
        offset += UInt64(d.count)
    }
    if closingOffset { withUnsafeBytes(of: offset.littleEndian) { s.append(contentsOf: $0) } }
    try t.write(to: URL(fileURLWithPath: tokens))
    try s.write(to: URL(fileURLWithPath: starts))
}

/// Runs a shell command line; returns exit status, stdout and stderr.
@discardableResult
func shell(_ command: String) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", command]
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// Starts `executable` with `arguments`, its output going to files in `dir` (no pipes to drain).
func launch(_ executable: String, _ arguments: [String], output: String? = nil) throws -> Process {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let output {
        try? Data().write(to: URL(fileURLWithPath: output))
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
    } else {
        p.standardOutput = FileHandle.nullDevice
    }
    p.standardError = FileHandle.nullDevice
    try p.run()
    return p
}
