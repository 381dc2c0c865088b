package server

// MaxHeldZip is maxHeldZip, for the tests of package server_test.
const MaxHeldZip = maxHeldZip
