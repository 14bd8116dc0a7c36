// The API behind our gateway in the mpp section. Usage: node upstream.mjs PORT
import http from 'node:http'
http.createServer((req, res) => res.end(`the answer is 42 (${req.url})`)).listen(Number(process.argv[2]), '127.0.0.1')
