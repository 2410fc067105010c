"""Reading image files into pixels, with every way a file can be bad turned into a reason."""
