"""Network policy shared by everything that reaches out: which addresses and domains a request may go to."""
