// The RASDDatastore module. See docs/ and the design brief.
