import CRASDKernels
import Foundation

/// Which implementation of the quantized matrix kernels runs.
///
/// All paths compute every output element with the same sequence of float operations over
/// exact integer block sums, so they give bit-identical results; they differ only in speed.
public enum KernelPath: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Swift SIMD, any CPU (on x86-64 the default target compiles it to SSE2).
    case portable
    /// C with AVX2, FMA and F16C (`vpmaddubsw`), selected at run time.
    case avx2
    /// C with AVX-512 VL/BW and VNNI (`vpdpbusd` on 256-bit vectors), selected at run time.
    case avx512vnni

    /// The paths this CPU can run, slowest first.
    public static var available: [KernelPath] {
        switch rasd_cpu_level() {
        case 2: return [.portable, .avx2, .avx512vnni]
        case 1: return [.portable, .avx2]
        default: return [.portable]
        }
    }

    /// The fastest path this CPU can run.
    public static var best: KernelPath { available.last ?? .portable }

    /// The path named by `$RASD_KERNELS` (`portable`, `avx2`, `avx512vnni`) when set, else ``best``.
    /// - Throws: ``EngineError`` when the name is unknown or the CPU cannot run that path.
    public static func fromEnvironment() throws -> KernelPath {
        guard let name = ProcessInfo.processInfo.environment["RASD_KERNELS"], !name.isEmpty else { return best }
        return try named(name)
    }

    /// The path called `name`, checked against this CPU.
    /// - Throws: ``EngineError/invalidArgument(_:)`` when the name is unknown or the CPU lacks it.
    public static func named(_ name: String) throws -> KernelPath {
        guard let path = KernelPath(rawValue: name) else {
            throw EngineError.invalidArgument(
                "unknown kernel path \"\(name)\" (choose one of \(allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard available.contains(path) else {
            throw EngineError.invalidArgument(
                "this CPU cannot run the \(name) kernels (available: \(available.map(\.rawValue).joined(separator: ", ")))")
        }
        return path
    }

    public var description: String { rawValue }
}
