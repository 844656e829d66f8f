/// An error reading a GGUF file, naming the file and what to do about it.
public struct GGUFError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong.
    public enum Kind: Sendable, Equatable {
        /// The file could not be opened, sized or mapped.
        case io
        /// The file does not start with the GGUF magic bytes.
        case notGGUF
        /// The GGUF version is not one this reader understands (2 and 3 are).
        case unsupportedVersion
        /// The file ends before a structure it announces (a killed download, a partial copy).
        case truncated
        /// A structure inside the file is inconsistent (bad type tag, impossible count or offset).
        case malformed
        /// A metadata key the caller needs is absent or has another type.
        case missingMetadata
        /// A tensor has a type this build cannot compute with.
        case unsupportedTensorType
        /// A tensor the caller needs is absent or has the wrong shape.
        case missingTensor
        /// The model's architecture (`general.architecture`) is not one this build can run.
        case unsupportedArchitecture
    }

    /// What went wrong.
    public var kind: Kind
    /// The file concerned.
    public var path: String
    /// Details, written for the person running the program.
    public var message: String

    /// Creates an error of `kind` about the file at `path`.
    public init(_ kind: Kind, path: String, _ message: String) {
        self.kind = kind
        self.path = path
        self.message = message
    }

    public var description: String {
        let hint: String
        switch kind {
        case .io: hint = "check the path and its permissions"
        case .notGGUF: hint = "pass a .gguf model file"
        case .unsupportedVersion: hint = "convert the model with a current llama.cpp (GGUF v3)"
        case .truncated:
            hint = "the file is incomplete; fetch it again (scripts/fetch-model re-downloads a damaged model)"
        case .malformed: hint = "the file is damaged or not written by a GGUF writer; fetch it again"
        case .missingMetadata, .missingTensor: hint = "this model file lacks what rasd needs; use a Llama-family GGUF"
        case .unsupportedTensorType: hint = "use a Q4_1, Q8_0, F16 or F32 model"
        case .unsupportedArchitecture: hint = "rasd runs Llama-family models (general.architecture llama)"
        }
        return "\(path): \(message) (\(hint))"
    }
}
