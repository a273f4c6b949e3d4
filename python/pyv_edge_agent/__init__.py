"""The import paths of the Pyvorin Edge article, served by edgert: every
name here is the same object as the one edgert exports."""
