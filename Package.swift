// swift-tools-version: 6.0
//
// rasd: retrieval-augmented speculative decoding.
//
// Library modules hold the logic; `rasd-index` is a thin command-line shell over them.
// C enters only through the small system-library targets `CLMDB` and `CZstd`, and the
// SIMD kernel target `CRASDKernels`.

import PackageDescription

let package = Package(
    name: "rasd",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "rasd-index", targets: ["rasd-index"]),
        .executable(name: "rasd-allocations", targets: ["rasd-allocations"]),
        .library(name: "RASDGGUF", targets: ["RASDGGUF"]),
        .library(name: "RASDTrees", targets: ["RASDTrees"]),
        .library(name: "RASDDatastore", targets: ["RASDDatastore"]),
        .library(name: "RASDTokenizer", targets: ["RASDTokenizer"]),
        .library(name: "RASDCorpus", targets: ["RASDCorpus"]),
        .library(name: "RASDModel", targets: ["RASDModel"]),
        .library(name: "RASDService", targets: ["RASDService"]),
        .library(name: "RASDDecoding", targets: ["RASDDecoding"]),
        .library(name: "RASDDraftHead", targets: ["RASDDraftHead"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
        // Allocation counting for `rasd-index bench` (steady-state allocation figures).
        .package(url: "https://github.com/ordo-one/malloc-interposer", exact: "1.6.1"),
        // Property-based tests (test targets only).
        .package(url: "https://github.com/x-sheep/swift-property-based", exact: "2.0.1"),
        // Structured logs of the retrieval daemon.
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
    ],
    targets: [
        // System libraries (Debian: liblmdb-dev, libzstd-dev; both ship pkg-config files).
        .systemLibrary(name: "CLMDB", pkgConfig: "lmdb", providers: [.apt(["liblmdb-dev"]), .brew(["lmdb"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"]), .brew(["zstd"])]),

        // GGUF container: metadata and tensor table over a memory-mapped file.
        .target(name: "RASDGGUF"),
        // Token trees: retrieval tries, pruning, fusion, verification layout, acceptance.
        .target(name: "RASDTrees"),
        // Compressed suffix-array token datastores in LMDB, exact retrieval.
        .target(
            name: "RASDDatastore",
            dependencies: [
                "CLMDB", "CZstd", "CRASDKernels", "RASDTrees",
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        // Byte-level BPE tokenizer (GGUF metadata or tokenizer.json), chat template, streaming decode.
        .target(
            name: "RASDTokenizer",
            dependencies: ["RASDGGUF", .product(name: "Crypto", package: "swift-crypto")]),
        // Corpora to tokenized documents: file listing, checks, parallel ordered tokenization.
        .target(
            name: "RASDCorpus",
            dependencies: ["RASDTokenizer", "RASDGGUF", .product(name: "Crypto", package: "swift-crypto")]),
        // Quantized matrix kernels with AVX2 / AVX-512 VNNI, chosen at run time, and prefetch hints
        // for suffix sorting (see kernels.c and rasd_kernels.h for the measurements that justify C).
        .target(name: "CRASDKernels"),
        // GGUF Llama-family inference with tree verification.
        .target(name: "RASDModel", dependencies: ["RASDGGUF", "RASDTrees", "CRASDKernels"]),
        // Retrieval daemon on a Unix socket: wire protocol, server, Swift client.
        .target(
            name: "RASDService",
            dependencies: ["RASDDatastore", "RASDTrees", .product(name: "Logging", package: "swift-log")]),
        // Speculative decoding: drafters, prompt lookup, retrieval fusion, the decode loop, evaluation.
        .target(name: "RASDDecoding", dependencies: ["RASDTrees", "RASDDatastore", "RASDModel", "RASDTokenizer", "RASDService"]),
        // The EAGLE-style draft head: its drafter (dynamic draft tree), loading, training data.
        .target(name: "RASDDraftHead", dependencies: ["RASDDecoding", "RASDModel", "RASDTrees", "RASDTokenizer", "RASDGGUF"]),

        .executableTarget(
            name: "rasd-index",
            dependencies: [
                "RASDDatastore", "RASDTokenizer", "RASDCorpus", "RASDModel", "RASDTrees", "RASDGGUF", "RASDDecoding", "RASDService", "RASDDraftHead",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // Counts the allocations of the per-step tree work for `rasd-index bench trees`; malloc
        // interposition stays out of rasd-index itself.
        .executableTarget(
            name: "rasd-allocations",
            dependencies: ["RASDTrees", .product(name: "MallocInterposerSwift", package: "malloc-interposer")]),

        .testTarget(name: "RASDGGUFTests", dependencies: ["RASDGGUF"]),
        .testTarget(
            name: "RASDTreesTests",
            dependencies: ["RASDTrees", .product(name: "PropertyBased", package: "swift-property-based")]),
        .testTarget(name: "RASDDatastoreTests", dependencies: ["RASDTestSupport", "RASDDatastore", "RASDTrees"]),
        .testTarget(name: "RASDTokenizerTests", dependencies: ["RASDTokenizer", "RASDGGUF"], exclude: ["Golden"]),
        .testTarget(name: "RASDCorpusTests", dependencies: ["RASDCorpus", "RASDTokenizer", "RASDGGUF"]),
        // Resources/ holds golden files read by path (scripts/reference/make_golden.py writes them).
        .testTarget(name: "RASDModelTests", dependencies: ["RASDModel", "RASDGGUF", "RASDTrees"], exclude: ["Resources"]),
        // Resources/ holds golden outputs read by path (scripts/draft-head/make_golden.py writes them).
        .testTarget(
            name: "RASDDraftHeadTests",
            dependencies: ["RASDDraftHead", "RASDDecoding", "RASDModel", "RASDTrees", "RASDTokenizer", "RASDGGUF", "RASDDatastore"],
            exclude: ["Resources"]),
        // Helpers shared by the datastore and service tests (small corpora, temporary directories).
        .target(name: "RASDTestSupport", dependencies: ["RASDDatastore"], path: "Tests/RASDTestSupport"),
        .testTarget(name: "RASDServiceTests", dependencies: ["RASDService", "RASDDatastore", "RASDTrees", "RASDTestSupport"]),
        .testTarget(name: "RASDDecodingTests", dependencies: ["RASDDecoding", "RASDTrees", "RASDDatastore", "RASDModel", "RASDTokenizer", "RASDGGUF", "RASDService"]),
    ],
    swiftLanguageModes: [.v6]
)
