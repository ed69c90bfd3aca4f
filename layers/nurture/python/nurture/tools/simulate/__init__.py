"""`nurture simulate`: synthetic buyers through the real engine, and the same buyers through a classic drip."""
