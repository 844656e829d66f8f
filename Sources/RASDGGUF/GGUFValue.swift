/// A metadata value of a GGUF file.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8)
    case int8(Int8)
    case uint16(UInt16)
    case int16(Int16)
    case uint32(UInt32)
    case int32(Int32)
    case uint64(UInt64)
    case int64(Int64)
    case float32(Float)
    case float64(Double)
    case bool(Bool)
    case string(String)
    /// An array; GGUF arrays are homogeneous, so every element has the same case.
    case array([GGUFValue])

    /// The value as an integer, when it is one of the integer cases.
    public var integer: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(v)
        default: return nil
        }
    }

    /// The value as a floating-point number, when it is numeric.
    public var double: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return integer.map(Double.init)
        }
    }

    /// The value as a string, when it is a string.
    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The value as a Boolean, when it is one.
    public var bool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The elements, when the value is an array.
    public var array: [GGUFValue]? {
        if case .array(let a) = self { return a }
        return nil
    }
}

/// Element types of GGML tensors, with their on-disk block geometry.
public struct GGMLType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let f32 = GGMLType(rawValue: 0)
    public static let f16 = GGMLType(rawValue: 1)
    public static let q4_0 = GGMLType(rawValue: 2)
    public static let q4_1 = GGMLType(rawValue: 3)
    public static let q5_0 = GGMLType(rawValue: 6)
    public static let q5_1 = GGMLType(rawValue: 7)
    public static let q8_0 = GGMLType(rawValue: 8)
    public static let q8_1 = GGMLType(rawValue: 9)
    public static let q2_K = GGMLType(rawValue: 10)
    public static let q3_K = GGMLType(rawValue: 11)
    public static let q4_K = GGMLType(rawValue: 12)
    public static let q5_K = GGMLType(rawValue: 13)
    public static let q6_K = GGMLType(rawValue: 14)
    public static let q8_K = GGMLType(rawValue: 15)
    public static let i8 = GGMLType(rawValue: 24)
    public static let i16 = GGMLType(rawValue: 25)
    public static let i32 = GGMLType(rawValue: 26)
    public static let i64 = GGMLType(rawValue: 27)
    public static let f64 = GGMLType(rawValue: 28)
    public static let bf16 = GGMLType(rawValue: 30)

    /// (elements per block, bytes per block), or nil for a type this reader does not know.
    public var blockGeometry: (elements: Int, bytes: Int)? {
        switch rawValue {
        case 0: return (1, 4)
        case 1, 30: return (1, 2)
        case 2: return (32, 18)
        case 3: return (32, 20)
        case 6: return (32, 22)
        case 7: return (32, 24)
        case 8: return (32, 34)
        case 9: return (32, 36)
        case 10: return (256, 84)
        case 11: return (256, 110)
        case 12: return (256, 144)
        case 13: return (256, 176)
        case 14: return (256, 210)
        case 15: return (256, 292)
        case 24: return (1, 1)
        case 25: return (1, 2)
        case 26: return (1, 4)
        case 27, 28: return (1, 8)
        default: return nil
        }
    }

    public var description: String {
        switch rawValue {
        case 0: return "F32"
        case 1: return "F16"
        case 2: return "Q4_0"
        case 3: return "Q4_1"
        case 6: return "Q5_0"
        case 7: return "Q5_1"
        case 8: return "Q8_0"
        case 9: return "Q8_1"
        case 10: return "Q2_K"
        case 11: return "Q3_K"
        case 12: return "Q4_K"
        case 13: return "Q5_K"
        case 14: return "Q6_K"
        case 15: return "Q8_K"
        case 24: return "I8"
        case 25: return "I16"
        case 26: return "I32"
        case 27: return "I64"
        case 28: return "F64"
        case 30: return "BF16"
        default: return "type \(rawValue)"
        }
    }
}

/// One entry of a GGUF tensor table.
public struct GGUFTensorInfo: Sendable, Equatable {
    /// Tensor name, for example `blk.0.attn_q.weight`.
    public var name: String
    /// Dimensions, innermost (contiguous) first, as GGML stores them.
    public var dimensions: [Int]
    /// Element type.
    public var type: GGMLType
    /// Byte offset of the data relative to the start of the tensor data section.
    public var offset: Int
    /// Bytes the data occupies.
    public var byteCount: Int

    /// Number of elements.
    public var elementCount: Int { dimensions.reduce(1, *) }
}
