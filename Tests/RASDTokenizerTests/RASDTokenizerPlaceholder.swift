import Testing
import RASDTokenizer
