// Command webhook-receiver is a reference receiver of Roster's webhook protocol: it
// keeps accounts and groups in a JSON file. Run it behind TLS (-cert and -key, or a
// proxy that terminates TLS); the signing secrets come from the environment.
//
//	ROSTER_WEBHOOK_SECRETS=<secret>[,<previous secret>] webhook-receiver -listen :8443 -file accounts.json -cert tls.crt -key tls.key
package main

import (
	"flag"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/rosterhq/roster/examples/webhook-receiver/receiver"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8443", "address to listen on")
	file := flag.String("file", "accounts.json", "file that keeps the accounts and groups")
	noList := flag.Bool("no-list", false, "say that this receiver cannot list its accounts")
	cert := flag.String("cert", "", "TLS certificate file")
	key := flag.String("key", "", "TLS key file")
	flag.Parse()
	var secrets [][]byte
	for _, s := range strings.Split(os.Getenv("ROSTER_WEBHOOK_SECRETS"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			secrets = append(secrets, []byte(s))
		}
	}
	if len(secrets) == 0 {
		log.Fatal("set ROSTER_WEBHOOK_SECRETS to the signing secret (and, while rotating, the previous one after a comma)")
	}
	r, err := receiver.New(receiver.Options{Secrets: secrets, File: *file, NoList: *noList})
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Addr: *listen, Handler: r, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute}
	log.Printf("receiving Roster's webhook requests on %s", *listen)
	if *cert != "" {
		log.Fatal(srv.ListenAndServeTLS(*cert, *key))
	}
	log.Fatal(srv.ListenAndServe())
}
