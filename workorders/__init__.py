"""Field-service work orders."""
