// Deliberately empty: building happens in 'npm run build' (bootstrap), never at install time.
// Without an explicit install script npm would run 'node-gyp rebuild' by itself.
