"""Code every service needs: settings, database, Kafka, the event envelope, money, errors."""
