// The RASDTokenizer module. See docs/ and the design brief.
