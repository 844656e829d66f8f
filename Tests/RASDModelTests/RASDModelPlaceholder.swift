import Testing
import RASDModel
