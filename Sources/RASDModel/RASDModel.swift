// The RASDModel module. See docs/ and the design brief.
