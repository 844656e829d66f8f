import Testing
import RASDTrees
