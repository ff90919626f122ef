"""The project's simulator of raw all-sky exposures, with their truth."""
