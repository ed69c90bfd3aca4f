"""`nurture local`: the whole engine on one machine, with moto's server standing in for AWS."""
