"""Action lists: writes waiting for a card's next tap, confirmed by its transaction counter."""
