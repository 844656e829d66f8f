import Testing
import RASDDatastore
