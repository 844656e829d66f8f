import Foundation
import RASDGGUF
import RASDModel

/// Where draft heads live: the one shipped in the repository (`heads/`), or a trained one in
/// rasd's cache.
public enum DraftHeadLocation {
    /// The shipped head's file name for a target model file (`<model stem>.draft-head.gguf`).
    public static func fileName(forModel modelPath: String) -> String {
        var stem = URL(fileURLWithPath: modelPath).lastPathComponent
        if stem.hasSuffix(".gguf") { stem.removeLast(5) }
        return stem + ".draft-head.gguf"
    }

    /// The default head for `modelPath`: `heads/<name>` under the working directory when
    /// present (the repository ships the reference model's), else `$RASD_CACHE/draft-heads/<name>`.
    public static func defaultPath(forModel modelPath: String) -> String {
        let name = fileName(forModel: modelPath)
        let shipped = "heads/" + name
        if FileManager.default.fileExists(atPath: shipped) { return shipped }
        return ReferenceModel.cacheDirectory + "/draft-heads/" + name
    }

    /// Loads the head at `path` (default: ``defaultPath(forModel:)``) for `model`.
    /// - Throws: ``DraftHeadError`` naming the path when there is no head there; the loader's
    ///   errors otherwise.
    public static func load(_ path: String?, model: LlamaModel) throws -> DraftHead {
        let file = path ?? defaultPath(forModel: model.path)
        guard FileManager.default.fileExists(atPath: file) else {
            throw DraftHeadError(
                "no draft head at \(file): run from the repository root (it ships heads/), pass --draft-head PATH, or train one with `rasd-index draft-head train`")
        }
        return try DraftHead(path: file, target: model)
    }
}
